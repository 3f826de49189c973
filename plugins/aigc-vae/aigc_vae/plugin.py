from aigc_core import hookimpl


@hookimpl
def aigc_register_generators(register):
    register("vae", "aigc_vae.model:VAE", modality="image",
             description="Convolutional VAE: samples, reconstructions, interpolation, traversal; optional classes")


@hookimpl
def aigc_register_metrics(register):
    register("vae-likelihood", "aigc_vae.metrics:VAELikelihood", modality="image",
             description="Held-out ELBO, importance-sampled NLL (nats) and reconstruction error of a vae")
