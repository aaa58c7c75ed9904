"""Deployment files (prefect.yaml, pipeline YAMLs), shipped in the package so an installed ``reasonmed serve`` finds them."""
