//! The thermostat service of `examples/mqtt_service.rs`, its own `app` function, tested
//! under `TestApp` twice: in process and against the live Mosquitto (MQTT 5). The broker
//! is the one setting that differs.

#[path = "../mqtt_service.rs"]
#[allow(dead_code)]
mod service;

use std::time::Duration;

use ruststream::kit::live::{LiveServer, fresh_name};
use ruststream::runtime::Settlement;
use ruststream::testing::TestApp;
use ruststream_mqtt::{Config, MqttBroker, Protocol};
use service::{Heating, Reading};

/// The shared test server (`RUSTSTREAM_MQTT_URL` overrides the URL).
const MOSQUITTO: LiveServer = LiveServer {
    name: "Mosquitto",
    url_var: "RUSTSTREAM_MQTT_URL",
    default_url: "mqtt://127.0.0.1:1883",
    start_command: "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
};

async fn the_thermostat_heats_cold_rooms_and_drops_bad_faults(broker: MqttBroker) {
    let app = TestApp::start(service::app(broker.clone()), broker)
        .await
        .expect("the service starts");

    let reading = Reading {
        room: "kitchen".into(),
        celsius: 17.5,
    };
    app.publish("home/kitchen/temperature", &reading)
        .await
        .unwrap();
    assert_eq!(
        app.received("thermostat")[0].decoded::<Reading>().room,
        "kitchen"
    );
    assert_eq!(app.settlements("thermostat"), [Settlement::Acked]);
    assert_eq!(
        app.published("home/heating")[0].decoded::<Heating>(),
        Heating {
            room: "kitchen".into(),
            on: true
        }
    );

    let heating: Heating = app
        .request(
            "home/bedroom/temperature",
            &Reading {
                room: "bedroom".into(),
                celsius: 21.0,
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        heating,
        Heating {
            room: "bedroom".into(),
            on: false
        }
    );

    let fault = |celsius| Reading {
        room: "attic".into(),
        celsius,
    };
    app.publish("home/attic/fault", &fault(60.0)).await.unwrap();
    app.publish("home/attic/fault", &fault(500.0))
        .await
        .unwrap();
    assert_eq!(
        app.settlements("fault"),
        [Settlement::Acked, Settlement::Rejected]
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_thermostat_runs_in_process() {
    the_thermostat_heats_cold_rooms_and_drops_bad_faults(MqttBroker::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thermostat_runs_against_a_live_server() {
    let test = "the_thermostat_runs_against_a_live_server";
    let Some(url) = MOSQUITTO.find(test).await else {
        return;
    };
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    let config = Config::new(
        Protocol::V5,
        host,
        port.parse().expect("a port"),
        fresh_name("thermostat"),
    );
    the_thermostat_heats_cold_rooms_and_drops_bad_faults(MqttBroker::new(config)).await;
}
