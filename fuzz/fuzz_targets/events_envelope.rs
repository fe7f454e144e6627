//! The events envelope as a shim forwards it: the bytes of a
//! `ForwardRequest` (rust-protobuf, as the ttrpc server decodes it) into
//! berthd's Forward (`berth_daemon::shim_events::accept`): the envelope is
//! checked, converted to prost and published on the exchange.
//!
//! Oracle: an accepted envelope reaches a subscriber with the same
//! timestamp, namespace, topic and event; a refused one reaches nobody.
//! The event's `Any` then goes through the decoders berth's consumers
//! use (`berth_api::typeurl::unpack`, e.g. the CRI plugin's `/tasks/oom`).
#![no_main]

use berth_api::pb::events as ev;
use berth_api::typeurl::unpack;
use berth_core::filters::Filter;
use berth_daemon::events::Exchange;
use berth_daemon::shim_events::accept;
use berth_runtime::protos::protobuf::Message;
use berth_runtime::protos::shim::events::ForwardRequest;
use futures::{FutureExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use prost_types::Any;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ForwardRequest::parse_from_bytes(data) else {
        return;
    };
    let exchange = Exchange::default();
    let mut subscriber = Box::pin(exchange.subscribe(Filter::default()));
    let accepted = accept(&exchange, &request).is_ok();
    let delivered = subscriber.next().now_or_never().flatten();
    let Some(envelope) = delivered else {
        assert!(!accepted, "an accepted envelope reached no subscriber");
        return;
    };
    assert!(accepted, "a refused envelope reached a subscriber");
    let sent = request
        .envelope
        .as_ref()
        .expect("accepted with an envelope");
    assert_eq!(envelope.topic, sent.topic);
    assert_eq!(envelope.namespace, sent.namespace);
    let stamp = envelope.timestamp.map(|t| (t.seconds, t.nanos));
    let sent_stamp = sent.timestamp.as_ref().map(|t| (t.seconds, t.nanos));
    assert_eq!(stamp, sent_stamp, "timestamp");
    let event = envelope.event.as_ref().map(|a| (&a.type_url, &a.value));
    let sent_event = sent.event.as_ref().map(|a| (&a.type_url, &a.value));
    assert_eq!(event, sent_event, "event");
    if let Some(any) = &envelope.event {
        decode(any);
    }
});

/// Every task event type a consumer may unpack.
fn decode(any: &Any) {
    let _ = unpack::<ev::TaskCreate>(any);
    let _ = unpack::<ev::TaskStart>(any);
    let _ = unpack::<ev::TaskDelete>(any);
    let _ = unpack::<ev::TaskIo>(any);
    let _ = unpack::<ev::TaskExit>(any);
    let _ = unpack::<ev::TaskOom>(any);
    let _ = unpack::<ev::TaskExecAdded>(any);
    let _ = unpack::<ev::TaskExecStarted>(any);
    let _ = unpack::<ev::TaskPaused>(any);
    let _ = unpack::<ev::TaskResumed>(any);
    let _ = unpack::<ev::TaskCheckpointed>(any);
}
