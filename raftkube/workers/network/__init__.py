"""Node networking: pod routes, nftables service proxy, DNS server, ingress proxy."""
