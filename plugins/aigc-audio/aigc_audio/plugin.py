from aigc_core import hookimpl


@hookimpl
def aigc_register_generators(register):
    register("mel-vae", "aigc_audio.model:MelVAE", modality="audio",
             description="Class-conditional VAE of log-mel spectrograms, vocoded by a trained mel-vocoder or Griffin-Lim")
    register("mel-diffusion", "aigc_audio.diffusion:MelDiffusion", modality="audio",
             description="Class-conditional diffusion (diffusers U-Net) of log-mel spectrograms: guidance, DDIM/DPM-Solver, EMA")
    register("mel-vocoder", "aigc_audio.vocoder:MelVocoder", modality="audio",
             description="HiFi-GAN-style neural vocoder (log-mel to waveform) for spectrogram generators")


@hookimpl
def aigc_register_metrics(register):
    register("audio-classifier", "aigc_audio.metrics:AudioClassifierScore", modality="audio",
             description="Accuracy on asked labels and Frechet distance, by a classifier trained on clips the generator never saw")
    register("vocoder-fidelity", "aigc_audio.metrics:VocoderFidelity", modality="audio",
             description="Held-out clips re-synthesised from their mels: STFT distance and STOI, vocoder vs Griffin-Lim")
