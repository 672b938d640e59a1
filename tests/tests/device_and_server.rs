//! End-to-end: a device store and a real sync server side by side. The device walkthrough
//! (record offline, sync, spend) grows here as the sync protocol lands.

use fitkart_core::store::Store;
use fitkart_sync_server::testing::TestServer;

#[tokio::test]
async fn a_fresh_device_store_and_a_fresh_server_agree_on_being_ready() {
    let server = TestServer::start().await.unwrap();
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("fitkart.db")).unwrap();
    assert!(store.schema_version() >= 1);
    server.stop().await.unwrap();
}
