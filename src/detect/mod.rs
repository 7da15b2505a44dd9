//! Detections over flow time: CIDR and port rules, windowed top-K addresses, port scans.
