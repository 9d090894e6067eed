fn main() {
    for l in gradlab_cpu::SimdLevel::supported() {
        println!(
            "{l}: {:.1} GFLOP/s",
            gradlab_cpu::peak::fma_peak_gflops(l, 0.5)
        );
    }
    println!("triad {:.1} GB/s", gradlab_cpu::peak::triad_gbps(0.5));
}
