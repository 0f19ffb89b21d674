"""``cartsim serve``: a web page comparing therapies on a virtual cohort, and the JSON API behind it."""
