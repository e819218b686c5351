// `ack` consumes the message: a delayed redelivery cannot be asked for afterwards.
use std::time::Duration;

use ruststream::IncomingMessage;
use ruststream::memory::MemoryMessage;

async fn handle(message: MemoryMessage) {
    let _ = message.ack().await;
    let _ = message.nack_after(Duration::from_secs(1)).await;
}

fn main() {
    let _ = handle;
}
