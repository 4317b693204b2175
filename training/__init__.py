"""The training job: MovieLens ratings -> LightFM (WARP) -> evaluated, published serving model."""
