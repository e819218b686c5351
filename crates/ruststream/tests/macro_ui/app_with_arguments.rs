use ruststream::runtime::App;

#[ruststream::app]
async fn app(title: String) -> App {
    App::new(title)
}
