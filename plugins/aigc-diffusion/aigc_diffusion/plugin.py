from aigc_core import hookimpl


@hookimpl
def aigc_register_generators(register):
    # a string target: discovery imports neither torch nor diffusers
    register("ddpm", "aigc_diffusion.model:DDPM", modality="image",
             description="Denoising diffusion (diffusers U-Net): class guidance, DDIM/DPM-Solver sampling, EMA")
