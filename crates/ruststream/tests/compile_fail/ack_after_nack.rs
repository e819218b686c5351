// `nack` consumes the message: it cannot be acknowledged afterwards.
use ruststream::IncomingMessage;
use ruststream::memory::MemoryMessage;

async fn handle(message: MemoryMessage) {
    let _ = message.nack(true).await;
    let _ = message.ack().await;
}

fn main() {
    let _ = handle;
}
