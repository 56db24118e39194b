"""What every lakegate service shares: message contracts, subjects, settings, telemetry and errors."""
