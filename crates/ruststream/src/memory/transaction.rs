//! [`MemoryTransaction`].

use super::envelope::Envelope;
use super::{MemoryBroker, MemoryError};
use crate::{OutgoingMessage, Transaction};

/// A memory-broker transaction: publishes are held until `commit` delivers them together.
#[derive(Debug)]
pub struct MemoryTransaction {
    broker: MemoryBroker,
    staged: Vec<Envelope>,
}

impl MemoryTransaction {
    pub(crate) fn new(broker: MemoryBroker) -> Self {
        Self {
            broker,
            staged: Vec::new(),
        }
    }
}

impl Transaction for MemoryTransaction {
    type Error = MemoryError;

    async fn publish(&mut self, msg: OutgoingMessage<'_>) -> Result<(), MemoryError> {
        let staged = self.broker.stage(&msg)?;
        self.staged.push(staged);
        Ok(())
    }

    async fn commit(self) -> Result<(), MemoryError> {
        self.broker.commit(&self.staged)
    }

    async fn abort(self) -> Result<(), MemoryError> {
        Ok(())
    }
}
