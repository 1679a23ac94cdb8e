"""The fine-tuning job kind's runner and what it uses: training with the paper's recipe, transfer
modes, linear mode connectivity, GLUE metrics. Torch is imported here only; what a fine-tuning
cell trains (its level, the `finetuning:` section) is torch-free, in jdspec/tasks/finetune.py."""
