// An OutgoingMessage borrows its payload: it cannot outlive the buffer it points into.
use ruststream::OutgoingMessage;

fn main() {
    let message;
    {
        let payload = b"{\"id\":1}".to_vec();
        message = OutgoingMessage::new("orders.created", &payload);
    }
    println!("{}", message.name());
}
