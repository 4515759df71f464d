"""The DNS of the sandbox: real Knot and dnsmasq on 127.0.0.x, and stand-ins for the providers' APIs."""
