"""The generator families of the native training set (mixed-256), by file-name source prefix.

One grouping for three uses: leave-one-family-out holds out a whole family (benchmarks/lofo.py),
the attribution head names one (`inference.attribution`), and reports group per-source figures.
Families group sources by how the images were made (architecture and decoder), so that holding
one out removes every close relative; fine-tunes and LoRAs count as their base model.
"""

from __future__ import annotations

# key: (the name users know, the mixed-256 sources in it)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sd1": ("Stable Diffusion 1.x/2.x (and fine-tunes)", ("ddb", "sd15", "sdft")),
    "sdxl": ("Stable Diffusion XL", ("sdxl",)),
    "sd3": ("Stable Diffusion 3.x", ("sd35",)),
    "flux": ("FLUX", ("flux",)),
    "gpt": ("OpenAI image models (GPT-4o, gpt-image)", ("gptimg2", "gpt4o", "gptimage1")),
    "gemini": ("Google Gemini image (Nano Banana)", ("nanobanana",)),
    "midjourney": ("Midjourney", ("midjourney",)),
    "dalle2": ("DALL-E 2", ("dalle2",)),
    "latent_2022": ("latent diffusion of 2022 (CompVis LDM, GLID-3)", ("glid3", "ldm")),
    "dallemini": ("dalle-mini / Craiyon", ("dallemini",)),
    "disco": ("Disco Diffusion", ("disco",)),
    "gan_faces": ("GAN faces (StyleGAN family)", ("tpdne", "genphotos", "stylegan2")),
}
SOURCE_FAMILY = {source: key for key, (_, sources) in FAMILIES.items() for source in sources}


def family_of(source: str) -> str | None:
    """The family key of a source prefix (`ddb` -> `sd1`); None for a source of no family."""
    return SOURCE_FAMILY.get(source)
