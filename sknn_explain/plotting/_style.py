"""Colours and colormaps shared by the matplotlib and plotly renderers."""

#: colour of positive attributions (bars) - the red end of :data:`DIVERGING_CMAP`.
POSITIVE_COLOR = "#b2182b"
#: colour of negative attributions (bars) - the blue end of :data:`DIVERGING_CMAP`.
NEGATIVE_COLOR = "#2166ac"
#: colour of exactly-zero attributions
ZERO_COLOR = "#969696"
SIGN_PALETTE = {"positive": POSITIVE_COLOR, "negative": NEGATIVE_COLOR, "zero": ZERO_COLOR}
#: the reference sample (``ref_data_idx``) in global plots.
HIGHLIGHT_COLOR = "#ff7f00"
#: signed heatmaps: red positive, white 0, blue negative (matplotlib name).
DIVERGING_CMAP = "RdBu_r"
#: non-negative heatmaps (e.g. median |attribution|)
SEQUENTIAL_CMAP = "Reds"
#: boxes / violins / strips / bars of global plots
DISTRIBUTION_COLOR = "#9ecae1"
#: beeswarm points: low feature value blue, high red (as shap)
BEESWARM_CMAP = "coolwarm"
#: categories of non-numeric (categorical) features in beeswarm / dependence plots (tab10)
CATEGORY_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
