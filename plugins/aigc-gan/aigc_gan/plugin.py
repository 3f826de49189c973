from aigc_core import hookimpl


@hookimpl
def aigc_register_generators(register):
    register("dcgan", "aigc_gan.model:DCGAN", modality="image",
             description="Deep convolutional GAN: conditional, spectral norm, EMA sampling")
