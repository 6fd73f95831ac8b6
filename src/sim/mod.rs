//! A faithful Fly API simulator: Machines REST plus the GraphQL token calls.
