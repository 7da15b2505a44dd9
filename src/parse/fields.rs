//! The AWS flow-log fields: the fixed table of every field name AWS defines
//! (versions 2 to 8), the version that introduced it, and the typed [`Slot`] of
//! [`Record`](super::Record) it fills. Name lookups accept the AWS hyphen form
//! (`log-status`) and the underscore form that converters emit (`log_status`).

/// Where the value of one column goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Version,
    AccountId,
    InterfaceId,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    TcpFlags,
    PktSrcAddr,
    PktDstAddr,
    /// A known AWS field that has no typed slot: kept as raw text only.
    Text,
    /// A field AWS does not define (an ignored column).
    Unknown,
}

/// One field that AWS defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownField {
    /// The AWS name, as written in `${...}` formats and S3 header lines.
    pub name: &'static str,
    /// The flow-log version that introduced the field.
    pub version: u8,
    pub(crate) slot: Slot,
}

macro_rules! known_fields {
    ($($idx:literal $name:literal $version:literal $slot:ident,)*) => {
        /// Every field that AWS defines for flow logs (versions 2 to 8), in
        /// the order of the AWS "Available fields" table.
        pub const KNOWN_FIELDS: &[KnownField] = &[
            $(KnownField { name: $name, version: $version, slot: Slot::$slot },)*
        ];

        /// Index into [`KNOWN_FIELDS`] of an exact (hyphen-form) name.
        fn lookup_exact(name: &str) -> Option<usize> {
            match name {
                $($name => Some($idx),)*
                _ => None,
            }
        }
    };
}

known_fields! {
    0 "version" 2 Version,
    1 "account-id" 2 AccountId,
    2 "interface-id" 2 InterfaceId,
    3 "srcaddr" 2 SrcAddr,
    4 "dstaddr" 2 DstAddr,
    5 "srcport" 2 SrcPort,
    6 "dstport" 2 DstPort,
    7 "protocol" 2 Protocol,
    8 "packets" 2 Packets,
    9 "bytes" 2 Bytes,
    10 "start" 2 Start,
    11 "end" 2 End,
    12 "action" 2 Action,
    13 "log-status" 2 LogStatus,
    14 "vpc-id" 3 Text,
    15 "subnet-id" 3 Text,
    16 "instance-id" 3 Text,
    17 "tcp-flags" 3 TcpFlags,
    18 "type" 3 Text,
    19 "pkt-srcaddr" 3 PktSrcAddr,
    20 "pkt-dstaddr" 3 PktDstAddr,
    21 "region" 4 Text,
    22 "az-id" 4 Text,
    23 "sublocation-type" 4 Text,
    24 "sublocation-id" 4 Text,
    25 "pkt-src-aws-service" 5 Text,
    26 "pkt-dst-aws-service" 5 Text,
    27 "flow-direction" 5 Text,
    28 "traffic-path" 5 Text,
    29 "ecs-cluster-arn" 7 Text,
    30 "ecs-cluster-name" 7 Text,
    31 "ecs-container-instance-arn" 7 Text,
    32 "ecs-container-instance-id" 7 Text,
    33 "ecs-container-id" 7 Text,
    34 "ecs-second-container-id" 7 Text,
    35 "ecs-service-name" 7 Text,
    36 "ecs-task-definition-arn" 7 Text,
    37 "ecs-task-arn" 7 Text,
    38 "ecs-task-id" 7 Text,
    39 "reject-reason" 8 Text,
}

/// How many fields AWS defines.
pub(crate) const N_KNOWN: usize = 40;

/// The longest known name: longer names cannot be known fields.
const MAX_NAME: usize = 32;

/// Index into [`KNOWN_FIELDS`] of a field name, hyphen or underscore form.
pub(crate) fn field_id(name: &str) -> Option<usize> {
    if name.len() > MAX_NAME {
        return None;
    }
    if !name.as_bytes().contains(&b'_') {
        return lookup_exact(name);
    }
    let mut buf = [0u8; MAX_NAME];
    let bytes = name.as_bytes();
    for (dst, &b) in buf.iter_mut().zip(bytes) {
        *dst = if b == b'_' { b'-' } else { b };
    }
    std::str::from_utf8(&buf[..bytes.len()]).ok().and_then(lookup_exact)
}

/// The slot a column of this name fills: [`Slot::Unknown`] for a name AWS
/// does not define.
pub(crate) fn slot_of(name: &str) -> Slot {
    field_id(name).and_then(|i| KNOWN_FIELDS.get(i)).map_or(Slot::Unknown, |f| f.slot)
}

/// Whether AWS defines a flow-log field of this name (hyphen or underscore form).
pub fn is_known_field(name: &str) -> bool {
    field_id(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_indices_match_lookup() {
        assert_eq!(KNOWN_FIELDS.len(), N_KNOWN);
        for (i, f) in KNOWN_FIELDS.iter().enumerate() {
            assert_eq!(field_id(f.name), Some(i), "{}", f.name);
            assert!(f.name.len() <= MAX_NAME);
            assert!((2..=8).contains(&f.version));
        }
    }

    #[test]
    fn underscore_form_is_the_same_field() {
        assert_eq!(field_id("log_status"), field_id("log-status"));
        assert_eq!(field_id("pkt_src_aws_service"), Some(25));
        assert_eq!(field_id("ecs_task_id"), Some(38));
    }

    #[test]
    fn unknown_names() {
        for n in ["", "resource-id", "encryption-status", "Version", "log-status ", "x".repeat(100).as_str()] {
            assert_eq!(field_id(n), None, "{n:?}");
            assert_eq!(slot_of(n), Slot::Unknown);
        }
        assert!(is_known_field("tcp-flags"));
        assert!(!is_known_field("tcp-flag"));
    }

    #[test]
    fn typed_slots() {
        assert_eq!(slot_of("tcp-flags"), Slot::TcpFlags);
        assert_eq!(slot_of("pkt-dstaddr"), Slot::PktDstAddr);
        assert_eq!(slot_of("vpc-id"), Slot::Text);
        assert_eq!(slot_of("reject-reason"), Slot::Text);
    }
}
