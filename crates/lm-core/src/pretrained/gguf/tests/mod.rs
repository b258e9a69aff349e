mod assets;
mod blocks;
mod files;
mod reference;
