"""Passes over the IR and the pipeline that composes them."""
