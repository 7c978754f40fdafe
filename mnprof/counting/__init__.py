"""Counting params and multiply-accumulates three ways: analytic, fvcore and thop, and reconciling them."""
