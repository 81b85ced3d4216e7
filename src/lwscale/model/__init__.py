"""Layer 3, the model: the stacked LLaMA-style Transformer, parameter classes, the user's own model
(``model.factory``) and the muP pieces of the library API."""
