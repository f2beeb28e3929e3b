//! Arbitrary frame sequences (the fuzz target's property in the ordinary test run): no
//! panic, a connection error sticks, and nothing is sent after it.

use proptest::prelude::*;

use super::*;
use crate::http2::frame::kind;

fn arbitrary_frame() -> impl Strategy<Value = Vec<u8>> {
    let headers = (0u32..8, any::<bool>()).prop_map(|(id, end)| headers(2 * id + 1, &GET, end));
    let raw = (
        0u8..11,
        any::<u8>(),
        0u32..10,
        proptest::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(k, flags, id, payload)| frame(k, flags, id, &payload));
    prop_oneof![3 => raw, 1 => headers]
}

proptest! {
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(arbitrary_frame(), 0..40)) {
        let mut p = Peer::new();
        let mut failed = None;
        for f in frames {
            let r = p.send(&f);
            for e in p.events() {
                if let Event::Request { id, end_stream, .. } = e {
                    p.conn.send_headers(id, 200, std::iter::empty(), false);
                    let cap = p.conn.send_capacity(id).min(10);
                    p.conn.send_data(id, &vec![0; cap], end_stream);
                }
            }
            if let Err(e) = r {
                failed = Some(e);
                break;
            }
            p.frames();
        }
        if let Some(e) = failed {
            let out = p.conn.output().to_vec();
            prop_assert_eq!(out[out.len() - 17 + 3], kind::GOAWAY);
            prop_assert_eq!(p.send(&[]), Err(e));
            prop_assert_eq!(p.conn.active_streams(), 0);
        }
    }
}
