// tb_mac_array: runs one intsim golden matmul case through mac_array ($readmemh / $writememh).
//
// Reads the case's A (M x K), B (K x N) and optional bias (N) in the suite's hex format (one
// word per line, row-major, two's complement), computes every C[i][j] = bias[j] +
// sum_k A[i][k] * B[k][j] on the MAC lanes (LANES output columns at a time, k ascending, one
// MAC per clock), and dumps C and the per-output overflow flags, ready for
// `intsim golden compare SUITE --dut DUMPS`.
//
// Plusargs: +A=<file> +B=<file> [+BIAS=<file>] +C=<file> +OVF=<file> +M=<int> +K=<int>
//           +N=<int> +SAT=<0|1>
// Parameters: those of mac_array, and DEPTH (words per memory).

`timescale 1ns/1ps

module tb_mac_array;
    parameter integer A_BITS   = 8;
    parameter integer B_BITS   = 8;
    parameter integer A_SIGNED = 1;
    parameter integer B_SIGNED = 1;
    parameter integer ACC_BITS = 32;
    parameter integer LANES    = 4;
    parameter integer DEPTH    = 65536;

    reg clk = 1'b0;
    always #5 clk = ~clk;

    reg                       rst, load, en, sat;
    reg  [A_BITS-1:0]         a;
    reg  [LANES*B_BITS-1:0]   b;
    reg  [LANES*ACC_BITS-1:0] bias;
    wire [LANES*ACC_BITS-1:0] acc;
    wire [LANES-1:0]          ovf;

    mac_array #(.A_BITS(A_BITS), .B_BITS(B_BITS), .A_SIGNED(A_SIGNED), .B_SIGNED(B_SIGNED),
                .ACC_BITS(ACC_BITS), .LANES(LANES)) dut (
        .clk(clk), .rst(rst), .load(load), .en(en), .sat(sat),
        .a(a), .b(b), .bias(bias), .acc(acc), .ovf(ovf)
    );

    reg [A_BITS-1:0]   a_mem    [0:DEPTH-1];
    reg [B_BITS-1:0]   b_mem    [0:DEPTH-1];
    reg [ACC_BITS-1:0] bias_mem [0:DEPTH-1];
    reg [ACC_BITS-1:0] c_mem    [0:DEPTH-1];
    reg [0:0]          ovf_mem  [0:DEPTH-1];

    reg [8*1024-1:0] a_file, b_file, bias_file, c_file, ovf_file;
    integer m, kk, n, use_sat, i, j0, k, l;
    reg use_bias;

    initial begin
        if (!$value$plusargs("A=%s", a_file) || !$value$plusargs("B=%s", b_file) ||
            !$value$plusargs("C=%s", c_file) || !$value$plusargs("OVF=%s", ovf_file) ||
            !$value$plusargs("M=%d", m) || !$value$plusargs("K=%d", kk) ||
            !$value$plusargs("N=%d", n) || !$value$plusargs("SAT=%d", use_sat)) begin
            $display("tb_mac_array: ERROR: missing plusargs (+A +B +C +OVF +M +K +N +SAT)");
            $finish;
        end
        use_bias = ($value$plusargs("BIAS=%s", bias_file) != 0);
        if (m * kk > DEPTH || kk * n > DEPTH || m * n > DEPTH) begin
            $display("tb_mac_array: ERROR: case larger than DEPTH=%0d words", DEPTH);
            $finish;
        end
        $readmemh(a_file, a_mem, 0, m * kk - 1);
        $readmemh(b_file, b_mem, 0, kk * n - 1);
        if (use_bias)
            $readmemh(bias_file, bias_mem, 0, n - 1);

        sat = use_sat[0];
        rst = 1'b1; load = 1'b0; en = 1'b0; a = 0; b = 0; bias = 0;
        @(posedge clk); #1 rst = 1'b0;

        for (i = 0; i < m; i = i + 1) begin
            for (j0 = 0; j0 < n; j0 = j0 + LANES) begin
                for (l = 0; l < LANES; l = l + 1)
                    bias[l*ACC_BITS +: ACC_BITS] = (use_bias && j0 + l < n) ? bias_mem[j0 + l] : {ACC_BITS{1'b0}};
                load = 1'b1;
                @(posedge clk); #1 load = 1'b0;
                for (k = 0; k < kk; k = k + 1) begin
                    a = a_mem[i * kk + k];
                    for (l = 0; l < LANES; l = l + 1)
                        b[l*B_BITS +: B_BITS] = (j0 + l < n) ? b_mem[k * n + j0 + l] : {B_BITS{1'b0}};
                    en = 1'b1;
                    @(posedge clk); #1;
                end
                en = 1'b0;
                for (l = 0; l < LANES; l = l + 1)
                    if (j0 + l < n) begin
                        c_mem[i * n + j0 + l]   = acc[l*ACC_BITS +: ACC_BITS];
                        ovf_mem[i * n + j0 + l] = ovf[l];
                    end
            end
        end
        $writememh(c_file, c_mem, 0, m * n - 1);
        $writememh(ovf_file, ovf_mem, 0, m * n - 1);
        $finish;
    end
endmodule
