#[ruststream::app(title = "orders")]
fn main() -> ruststream::runtime::App {
    ruststream::runtime::App::new("orders")
}
