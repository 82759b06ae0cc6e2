//! What the API asks of alerting: each write and its announcement on the bus are one call, so
//! the dispatcher hears of every change at once and no caller can forget to tell it.

use steward_core::Event;
use steward_core::alert::Fingerprint;
use steward_core::alert::mute::Silence;
use steward_core::audit::Actor;
use steward_store::alerts::{Ack, AlertChange, AlertReceipt, StoredAlert, StoredSilence};
use steward_store::{Store, StoreError};

use crate::EventBus;

/// Stores received alerts (audited once, `alert.receive`) and announces those whose state
/// changed. Answers each receipt's change, in order.
pub async fn receive(
    store: &dyn Store,
    bus: &EventBus,
    receipts: &[AlertReceipt],
    actor: &Actor,
) -> Result<Vec<AlertChange>, StoreError> {
    let changes = store.receive_alerts(receipts, actor).await?;
    let fingerprints = steward_store::alerts::changed_fingerprints(receipts, &changes);
    if !fingerprints.is_empty() {
        bus.publish(Event::AlertsChanged { fingerprints });
    }
    Ok(changes)
}

/// Acknowledges the current episode of a firing alert (audited, `alert.ack`) and announces it.
pub async fn acknowledge(
    store: &dyn Store,
    bus: &EventBus,
    fingerprint: Fingerprint,
    ack: &Ack,
    actor: &Actor,
) -> Result<StoredAlert, StoreError> {
    let acked = store.ack_alert(fingerprint, ack, actor).await?;
    bus.publish(Event::AlertsChanged {
        fingerprints: vec![acked.fingerprint],
    });
    Ok(acked)
}

/// Stores a silence (audited, `silence.create`) and announces it.
pub async fn create_silence(
    store: &dyn Store,
    bus: &EventBus,
    silence: &Silence,
    now_ms: i64,
    actor: &Actor,
) -> Result<StoredSilence, StoreError> {
    let stored = store.create_silence(silence, now_ms, actor).await?;
    bus.publish(Event::SilencesChanged);
    Ok(stored)
}

/// Ends a silence now (audited, `silence.expire`) and announces it.
pub async fn expire_silence(
    store: &dyn Store,
    bus: &EventBus,
    id: i64,
    now_ms: i64,
    actor: &Actor,
) -> Result<StoredSilence, StoreError> {
    let expired = store.expire_silence(id, now_ms, actor).await?;
    bus.publish(Event::SilencesChanged);
    Ok(expired)
}
