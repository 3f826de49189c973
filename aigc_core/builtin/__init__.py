"""The core's own components, registered through the same hooks any plugin uses.

Targets are strings so that listing plugins imports none of these modules.
"""

from aigc_core.hookspecs import hookimpl

_B = "aigc_core.builtin"


@hookimpl
def aigc_register_modalities(register):
    register("image", f"{_B}.modalities:ImageModality", description="numpy.float32 array, CHW, values in [0, 1]")
    register("text", f"{_B}.modalities:TextModality", description="str")
    register("audio", f"{_B}.modalities:AudioModality",
             description="numpy.float32 array, 1-D mono waveform in [-1, 1], with meta['sample_rate']")


@hookimpl
def aigc_register_data_sources(register):
    register("sklearn-digits", f"{_B}.image_sources:SklearnDigits", modality="image",
             description="The 1,797 real 8x8 handwritten digits shipped inside scikit-learn, resized")
    register("image-folder", f"{_B}.image_sources:ImageFolder", modality="image",
             description="PNG/JPEG files from a folder; class labels from subfolders")
    register("mnist", f"{_B}.image_sources:MNIST", modality="image",
             description="MNIST from its four IDX files in a local directory")
    register("text-files", f"{_B}.text_sources:TextFiles", modality="text",
             description="Text from .txt files, a folder of them, or a field of a JSONL file")
    register("python-docs", f"{_B}.text_sources:PythonDocs", modality="text",
             description="The documentation text shipped inside CPython (pydoc_data.topics)")
    register("audio-folder", f"{_B}.audio_sources:AudioFolder", modality="audio",
             description="WAV/FLAC/OGG files, mono, resampled, fixed length; labels from folders or names")
    register("synth-notes", f"{_B}.audio_sources:SynthNotes", modality="audio",
             description="Procedural instrument-like notes (timbres, pitches, envelopes), labelled")


@hookimpl
def aigc_register_postprocessors(register):
    register("denoise", f"{_B}.image_post:Denoise", modality="image",
             description="Median or Gaussian filter")
    register("sharpen", f"{_B}.image_post:Sharpen", modality="image", description="Unsharp mask")
    register("contrast", f"{_B}.image_post:Contrast", modality="image",
             description="Stretch intensities between two percentiles")
    register("upscale", f"{_B}.image_post:Upscale", modality="image",
             description="Bicubic or Lanczos resize to a size or by a factor")
    register("image-grid", f"{_B}.image_post:ImageGrid", modality="image",
             description="Add one grid of all images as an extra item; keeps the singles")
    # text
    register("normalize", f"{_B}.text_post:Normalize", modality="text",
             description="Unicode (NFC/NFKC) and whitespace normalisation")
    register("dedupe", f"{_B}.text_post:Dedupe", modality="text",
             description="Drop exact and near-duplicate texts")
    register("length", f"{_B}.text_post:Length", modality="text",
             description="Drop texts shorter or longer than limits")
    register("blocklist", f"{_B}.text_post:Blocklist", modality="text",
             description="Drop texts containing words or regexes from a file")
    register("redact-pii", f"{_B}.text_post:RedactPII", modality="text",
             description="Replace e-mail addresses, phone numbers, IPs and card-like numbers by tags")
    register("repetition", f"{_B}.text_post:Repetition", modality="text",
             description="Quality gate: drop degenerate repetitive loops")
    # audio
    register("loudness", f"{_B}.audio_post:Loudness", modality="audio",
             description="Normalise to a target loudness in LUFS (BS.1770)")
    register("peak-normalise", f"{_B}.audio_post:PeakNormalise", modality="audio",
             description="Scale so the peak sits at a target level")
    register("trim-silence", f"{_B}.audio_post:TrimSilence", modality="audio",
             description="Cut leading and trailing silence")
    register("fade", f"{_B}.audio_post:Fade", modality="audio", description="Fade in and out")
    register("resample", f"{_B}.audio_post:Resample", modality="audio",
             description="Resample to another sample rate")
    register("denoise", f"{_B}.audio_post:SpectralGate", modality="audio",
             description="Spectral-gating noise reduction")
    register("audio-quality", f"{_B}.audio_post:AudioQuality", modality="audio",
             description="Quality gate: drop silent, clipped or non-finite clips")


@hookimpl
def aigc_register_metrics(register):
    register("frechet", f"{_B}.frechet:FrechetDistance", modality="image",
             description="Frechet distance to held-out real images in a small classifier's feature space")
    register("image-diversity", f"{_B}.image_diversity:ImageDiversity", modality="image",
             description="Precision, recall, density, coverage, intra-class spread; gate against collapse")
    register("image-memorisation", f"{_B}.image_memorisation:ImageMemorisation", modality="image",
             description="Share of images nearer a training image than held-out real images are")


@hookimpl
def aigc_register_exporters(register):
    register("image", f"{_B}.exporters:PNGExporter", modality="image",
             description="One PNG per item with provenance in text chunks")
    register("text", f"{_B}.exporters:TextExporter", modality="text",
             description="One .txt per item plus samples.jsonl with metadata")
    register("audio", f"{_B}.exporters:WAVExporter", modality="audio",
             description="One 16-bit PCM WAV per item with provenance in its comment")
