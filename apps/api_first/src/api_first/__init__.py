"""DevStack Core reference API, models generated from the contract."""
