"""The data mart (经分数据集市) as this project reads it: its input tables and a demo generator."""
