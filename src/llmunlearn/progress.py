"""Progress bars: widgets in JupyterLab, text on a terminal and in the book's build.

The book's kernels (:func:`llmunlearn.report.book.kernel_env`) set ``LLMUNLEARN_PROGRESS=console``
so that what a chapter does inside a cell reaches the terminal that builds the book; a
notebook opened in JupyterLab (with ``ipywidgets``, the ``lab`` extra) gets widget bars.
"""

import os


def progress_bar(*args, **kwargs):
    """``tqdm`` (text, to stderr) when ``LLMUNLEARN_PROGRESS=console``, else ``tqdm.auto``
    (a widget in a notebook front end, text elsewhere)."""
    if os.environ.get("LLMUNLEARN_PROGRESS") == "console":
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(*args, **kwargs)
