"""lakegate's benchmarks: measurement only, never part of the test suite. See bench/README.md."""
