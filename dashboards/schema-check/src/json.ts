// Grafana's schema types use TypeScript string enums (ThresholdsMode,
// FieldColorModeId, ...), to which a plain JSON string is never assignable.
// Json<T> maps a schema type to the type of its JSON form: every string enum
// becomes the union of its string values, the rest keeps its shape, so that a
// dashboard's JSON can be checked with `satisfies Json<Dashboard>`, excess
// properties and bad enum values included.
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

// The same with every property optional, at every depth: panel options and
// field configs in saved dashboards hold only what differs from the defaults.
export type PartialJson<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<PartialJson<U>>
      : T extends object
        ? { [K in keyof T]?: PartialJson<T[K]> }
        : T;
