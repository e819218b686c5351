//! The shop service of `examples/nats_service.rs`, its own `app` function, tested under
//! `TestApp` twice: in process and against the live NATS server. The broker is the one
//! setting that differs.

#[path = "../nats_service.rs"]
#[allow(dead_code)]
mod service;

use std::time::Duration;

use ruststream::kit::live::LiveServer;
use ruststream::runtime::Settlement;
use ruststream::testing::TestApp;
use ruststream_nats::{Config, NatsBroker};
use service::{Order, Receipt, Refund};

/// The shared test server (`RUSTSTREAM_NATS_URL` overrides the URL).
const NATS: LiveServer = LiveServer {
    name: "NATS",
    url_var: "RUSTSTREAM_NATS_URL",
    default_url: "nats://127.0.0.1:4222",
    start_command: "nats-server -a 127.0.0.1 -p 4222 -js",
};

/// The service's test, whichever broker it runs on.
async fn the_shop_bills_orders_and_drops_empty_refunds(broker: NatsBroker) {
    let app = TestApp::start(service::app(broker.clone()), broker)
        .await
        .expect("the service starts");

    app.publish(
        "shop.orders.eu.placed",
        &Order {
            id: 7,
            amount: 10.0,
        },
    )
    .await
    .unwrap();
    assert_eq!(app.received("bill")[0].decoded::<Order>().id, 7);
    assert_eq!(app.settlements("bill"), [Settlement::Acked]);
    let receipts = app.published("shop.receipts.issued");
    assert_eq!(
        receipts[0].decoded::<Receipt>(),
        Receipt { id: 7, total: 12.0 }
    );

    let receipt: Receipt = app
        .request(
            "shop.orders.us.placed",
            &Order { id: 8, amount: 5.0 },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(receipt, Receipt { id: 8, total: 6.0 });

    app.publish(
        "shop.refunds.damaged",
        &Refund {
            order: 7,
            amount: 3.0,
        },
    )
    .await
    .unwrap();
    app.publish(
        "shop.refunds.damaged",
        &Refund {
            order: 7,
            amount: 0.0,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        app.settlements("refund"),
        [Settlement::Acked, Settlement::Rejected]
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_shop_runs_in_process() {
    the_shop_bills_orders_and_drops_empty_refunds(NatsBroker::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_runs_against_a_live_server() {
    let Some(url) = NATS.find("the_shop_runs_against_a_live_server").await else {
        return;
    };
    the_shop_bills_orders_and_drops_empty_refunds(NatsBroker::new(Config::new(url))).await;
}
