"""Population fits of NONMEM-style datasets: FOCE-I estimation and a Bayesian option (``cartsim fit``)."""
