//! The connections the no-op benchmarks pool: a pool-core factory and an r2d2 manager whose
//! connections do nothing, so a benchmark measures the pools themselves (`compare`,
//! `scaling`, `pool_set`).

use std::time::Duration;

use pool_core::ConnectionFactory;

/// pool-core's no-op factory: every connection is a `u64`, opened and checked at once.
pub struct Nop;
impl ConnectionFactory for Nop {
    type Connection = u64;
    type Error = std::io::Error;
    fn create(&self, _: Duration) -> Result<u64, std::io::Error> {
        Ok(0)
    }
    fn validate(&self, _: &mut u64, _: Duration) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// r2d2's no-op manager, the same connections.
pub struct NopManager;
impl r2d2::ManageConnection for NopManager {
    type Connection = u64;
    type Error = std::io::Error;
    fn connect(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
    fn is_valid(&self, _: &mut u64) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}
