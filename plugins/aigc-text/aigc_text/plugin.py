from aigc_core import hookimpl


@hookimpl
def aigc_register_generators(register):
    register("causal-lm", "aigc_text.model:CausalLM", modality="text",
             description="Transformers causal language model (GPT-2 by default), trained or fine-tuned; streams")


@hookimpl
def aigc_register_metrics(register):
    register("text-likelihood", "aigc_text.metrics:TextLikelihood", modality="text",
             description="Held-out perplexity per token, nats per character and bits per byte")
    register("memorisation", "aigc_text.metrics:Memorisation", modality="text",
             description="Share of generated texts copying a 50+ character span of the training text")
