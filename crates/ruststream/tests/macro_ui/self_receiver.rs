use ruststream::subscriber;

struct Service;

impl Service {
    #[subscriber("orders")]
    async fn handle_order(&self, order: u64) {
        let _ = order;
    }
}

fn main() {}
