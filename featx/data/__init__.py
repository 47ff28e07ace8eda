"""Where pixels come from: a dataset's records and layouts (folders, CSV, URLs), decoding images,
and the augmentations of views. Imports only featx's core (errors, config)."""
