//! The software renderer: egui painted on the CPU into the window's pixels, for machines with
//! no GPU. Mesa's own software OpenGL (llvmpipe) works there too, but it brings LLVM and
//! about 80 MB of memory for a window of buttons; this path needs about a tenth of that
//! (docs/BENCHMARKS.md).

pub mod offscreen;
pub mod raster;
mod window;

pub use window::run;
