from aigc_core import hookimpl


@hookimpl
def aigc_register_generators(register):
    register("mel-vae", "aigc_audio.model:MelVAE", modality="audio",
             description="Class-conditional VAE of log-mel spectrograms, vocoded by InverseMelScale + Griffin-Lim")


@hookimpl
def aigc_register_metrics(register):
    register("audio-classifier", "aigc_audio.metrics:AudioClassifierScore", modality="audio",
             description="Accuracy on asked labels and Frechet distance in a small audio classifier's embedding")
