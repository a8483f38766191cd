pub mod torch_file;
