"""n3f: Neural Feature Fusion Fields as a staged, restartable pipeline.

The package does the work; the Snakemake workflow in ``workflow/`` only wires
its functions into a DAG so that every stage can be rerun and resumed alone.
"""

__version__ = "0.1.0"
