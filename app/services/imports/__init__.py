"""Order sync: marketplace export files and JSON batches into orders, items and customers."""
