from aigc_core import hookimpl


@hookimpl
def aigc_register_generators(register):
    register("dcgan", "aigc_gan.model:DCGAN", modality="image",
             description="Deep convolutional GAN: conditional, spectral norm, EMA sampling")
    register("stylegan", "aigc_gan.stylegan:StyleGAN", modality="image",
             description="Style-based GAN (StyleGAN2 line): adaptive augmentation, truncation, style mixing, "
                         "walks in W, projection")
