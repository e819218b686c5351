// `ack` consumes the message: acknowledging it twice does not compile.
use ruststream::IncomingMessage;
use ruststream::memory::MemoryMessage;

async fn handle(message: MemoryMessage) {
    let _ = message.ack().await;
    let _ = message.ack().await;
}

fn main() {
    let _ = handle;
}
