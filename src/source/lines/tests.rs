use super::*;

/// Records what the splitter hands over, call by call.
#[derive(Debug, Default)]
struct Collect {
    batches: Vec<Vec<u8>>,
    over_long: Vec<Vec<u8>>,
}

impl LineSink for Collect {
    fn lines(&mut self, batch: &[u8]) {
        self.batches.push(batch.to_vec());
    }
    fn over_long(&mut self, head: &[u8]) {
        self.over_long.push(head.to_vec());
    }
}

impl Collect {
    /// Every line of every batch, in order.
    fn lines(&self) -> Vec<Vec<u8>> {
        self.batches.iter().flat_map(|b| b.split(|&c| c == b'\n').map(<[u8]>::to_vec)).collect()
    }
}

/// Hands out at most `step` bytes per read, an `Interrupted` error before
/// every read when `interrupt` is set, and a hard error at the end when
/// `fail` is set.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    interrupt: bool,
    interrupted: bool,
    fail: bool,
}

impl<'a> Trickle<'a> {
    fn new(data: &'a [u8], step: usize) -> Trickle<'a> {
        Trickle { data, step, interrupt: false, interrupted: false, fail: false }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.interrupt && !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupted = false;
        if self.fail && self.data.is_empty() {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        }
        let n = out.len().min(self.data.len()).min(self.step);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn split_with(data: &[u8], step: usize, buffer: usize) -> Collect {
    let mut sink = Collect::default();
    let mut buf = vec![0u8; buffer];
    split(&mut Trickle::new(data, step), &mut buf, &mut sink).unwrap();
    sink
}

fn owned(lines: &[&[u8]]) -> Vec<Vec<u8>> {
    lines.iter().map(|l| l.to_vec()).collect()
}

#[test]
fn lines_across_read_boundaries_come_whole_whatever_the_read_sizes() {
    let text: String = (0..20_000).map(|i| format!("line {i} {}\n", "y".repeat(i % 97))).collect();
    let want: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    for step in [1, 2, 3, 7, 977, 4096, MIN_BUFFER - 1, usize::MAX] {
        let sink = split_with(text.as_bytes(), step, MIN_BUFFER);
        assert_eq!(sink.lines(), want, "step {step}");
        assert!(sink.over_long.is_empty(), "step {step}");
        // Each batch is whole lines: none starts or ends inside a line.
        assert!(sink.batches.iter().all(|b| !b.ends_with(b"\n")), "step {step}");
    }
}

#[test]
fn the_lines_of_one_read_are_one_batch() {
    let text: String = (0..10_000).map(|i| format!("{i}\n")).collect();
    let sink = split_with(text.as_bytes(), usize::MAX, BLOCK);
    assert_eq!(sink.batches.len(), 1);
    assert_eq!(sink.lines().len(), 10_000);
}

#[test]
fn an_over_long_line_across_many_reads_is_handed_once_cut_to_the_buffer() {
    let mut data = b"first\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 5 * MIN_BUFFER + 3));
    data.extend(b"\nnext\r\n\nlast");
    for step in [1000, 4096, MIN_BUFFER, usize::MAX] {
        let sink = split_with(&data, step, MIN_BUFFER);
        assert_eq!(sink.over_long, [vec![b'x'; MIN_BUFFER]], "step {step}");
        assert_eq!(sink.lines(), owned(&[b"first", b"next\r", b"", b"last"]), "step {step}");
    }
}

#[test]
fn the_longest_whole_line_is_one_byte_short_of_the_buffer() {
    let len = MIN_BUFFER + 10;
    for step in [333, usize::MAX] {
        // A line of the buffer's length less one fits with its `\n`.
        let mut data = b"a\n".to_vec();
        data.extend(std::iter::repeat_n(b'z', len - 1));
        data.extend(b"\nb\n");
        let sink = split_with(&data, step, len);
        assert!(sink.over_long.is_empty(), "step {step}");
        assert_eq!(sink.lines(), owned(&[b"a", &vec![b'z'; len - 1], b"b"]), "step {step}");
        // One byte more and it is over-long.
        let mut data = b"a\n".to_vec();
        data.extend(std::iter::repeat_n(b'z', len));
        data.extend(b"\nb\n");
        let sink = split_with(&data, step, len);
        assert_eq!(sink.over_long, [vec![b'z'; len]], "step {step}");
        assert_eq!(sink.lines(), owned(&[b"a", b"b"]), "step {step}");
    }
}

#[test]
fn an_over_long_last_line_without_newline_is_handed_once() {
    let mut data = b"a\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 3 * MIN_BUFFER));
    for step in [4096, usize::MAX] {
        let sink = split_with(&data, step, MIN_BUFFER);
        assert_eq!(sink.over_long.len(), 1, "step {step}");
        assert_eq!(sink.lines(), owned(&[b"a"]), "step {step}");
    }
    // Two over-long lines in a row are two.
    let mut data = vec![b'x'; MIN_BUFFER];
    data.push(b'\n');
    data.extend(vec![b'y'; MIN_BUFFER + 1]);
    let sink = split_with(&data, 1 << 12, MIN_BUFFER);
    assert_eq!(sink.over_long, [vec![b'x'; MIN_BUFFER], vec![b'y'; MIN_BUFFER]]);
    assert!(sink.lines().is_empty());
}

#[test]
fn crlf_stays_for_the_parser_and_a_last_line_needs_no_newline() {
    for step in [1, 2, usize::MAX] {
        let sink = split_with(b"a\r\nb\r\nc", step, MIN_BUFFER);
        assert_eq!(sink.lines(), owned(&[b"a\r", b"b\r", b"c"]), "step {step}");
        let sink = split_with(b"only", step, MIN_BUFFER);
        assert_eq!(sink.lines(), owned(&[b"only"]), "step {step}");
        let sink = split_with(b"a\r", step, MIN_BUFFER);
        assert_eq!(sink.lines(), owned(&[b"a\r"]), "step {step}");
    }
}

#[test]
fn empty_lines_are_lines_and_an_empty_stream_is_nothing() {
    for step in [1, usize::MAX] {
        let sink = split_with(b"\n\na\n\n", step, MIN_BUFFER);
        assert_eq!(sink.lines(), owned(&[b"", b"", b"a", b""]), "step {step}");
        let sink = split_with(b"", step, MIN_BUFFER);
        assert!(sink.batches.is_empty() && sink.over_long.is_empty(), "step {step}");
    }
}

#[test]
fn nul_and_invalid_utf8_pass_through_untouched() {
    let data = b"a\0b\n\xff\xfe\xc3(\n\0\n\xe2\x82";
    for step in [1, 3, usize::MAX] {
        let sink = split_with(data, step, MIN_BUFFER);
        assert_eq!(sink.lines(), owned(&[b"a\0b", b"\xff\xfe\xc3(", b"\0", b"\xe2\x82"]), "step {step}");
    }
}

#[test]
fn a_small_buffer_grows_to_the_minimum_and_a_larger_one_bounds_lines() {
    let mut buf = vec![0u8; 10];
    let mut sink = Collect::default();
    let long = vec![b'q'; MIN_BUFFER - 1];
    split(&mut &long[..], &mut buf, &mut sink).unwrap();
    assert_eq!(buf.len(), MIN_BUFFER);
    assert_eq!(sink.lines(), [long]);
    let mut buf = vec![0u8; 3 * MIN_BUFFER];
    let long = vec![b'q'; 2 * MIN_BUFFER];
    let mut sink = Collect::default();
    split(&mut &long[..], &mut buf, &mut sink).unwrap();
    assert_eq!((buf.len(), sink.lines()), (3 * MIN_BUFFER, vec![long]));
}

#[test]
fn interrupted_reads_are_retried_and_a_read_error_ends_the_split() {
    let data = b"a\nb\nc";
    let mut sink = Collect::default();
    let mut r = Trickle { interrupt: true, ..Trickle::new(data, 1) };
    split(&mut r, &mut Vec::new(), &mut sink).unwrap();
    assert_eq!(sink.lines(), owned(&[b"a", b"b", b"c"]));
    let mut sink = Collect::default();
    let mut r = Trickle { fail: true, ..Trickle::new(data, 2) };
    let e = split(&mut r, &mut Vec::new(), &mut sink).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    // The complete lines before the error were handed over; the partial one not.
    assert_eq!(sink.lines(), owned(&[b"a", b"b"]));
}
