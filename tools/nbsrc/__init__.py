"""The lesson notebooks' sources, one module per lesson (nbNN.py: its cells), and the cell
helpers they share (cells.py). tools/make_notebooks.py writes them to notebooks/."""
