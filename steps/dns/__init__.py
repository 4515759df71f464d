"""DNS step kinds (update a record at a provider, put it back, watch it propagate), the providers'
APIs, and the propagation check library they and `cockpit dns check` share (`steps.dns.check`)."""
