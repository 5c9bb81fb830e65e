"""The data mart (经分数据集市) as this project reads it: its input tables (the demo generator is ``qz_outbound.dev.demo_datamart``)."""
