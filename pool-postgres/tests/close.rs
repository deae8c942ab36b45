//! Closing a connection: when the drop returns, the server's session is gone, so a
//! connection opened in its place never puts one more session at the server than the
//! pool counts (see `Bounded::poll_shutdown`, and tests/replicas.rs for the global cap of a
//! pool set sampled at three servers).

mod common;

use std::time::Duration;

use pool_core::ConnectionFactory;
use pool_postgres::PostgresConnectionFactory;

#[test]
fn a_dropped_connection_has_left_the_server() {
    require_server!("a_dropped_connection_has_left_the_server");
    let app = common::unique_app("close");
    let factory = PostgresConnectionFactory::new(common::URL)
        .unwrap()
        .with_application_name(&app);
    let mut admin = common::admin();
    let mut lingering = 0;
    for _ in 0..20 {
        let mut conn = factory.create(Duration::from_secs(5)).unwrap();
        conn.simple_query("SELECT 1").unwrap();
        assert_eq!(common::sessions(&mut admin, &app), 1);
        drop(conn); // the pool's closer does exactly this
                    // Counted at once: the close waited for the server to hang up, and PostgreSQL
                    // hangs up only when the backend has exited.
        lingering += common::sessions(&mut admin, &app);
    }
    assert_eq!(
        lingering, 0,
        "sessions still at the server right after their close"
    );
}
