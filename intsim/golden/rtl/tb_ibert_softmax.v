// tb_ibert_softmax: runs one intsim golden ibert.softmax case (variant published) through
// ibert_softmax ($readmemh / $writememh), row by row, and checks the documented latency.
//
// Plusargs: +X=<file> +ROWS=<int> +N=<row length> +Y=<file> [+EXP16=<file>] [+SUM=<file>]
//           [+FACTOR=<file>]
// Parameters: those of ibert_softmax, and DEPTH (words per memory).

`timescale 1ns/1ps

module tb_ibert_softmax;
    parameter integer       IN_BITS = 32;
    parameter integer       MAX_N   = 64;
    parameter integer       OUT_BIT = 8;
    parameter signed [63:0] X0      = -70;
    parameter signed [63:0] B_INT   = 270;
    parameter signed [63:0] C_INT   = 27921;
    parameter signed [63:0] RQ_M    = 1260095003;
    parameter integer       RQ_E    = 60;
    parameter integer       DEPTH   = 65536;

    reg clk = 1'b0;
    always #5 clk = ~clk;

    reg                       rst, in_valid, in_last;
    reg  signed [IN_BITS-1:0] in_x;
    wire                      out_valid, out_last, busy;
    wire [15:0]               out_y;
    wire signed [15:0]        out_exp16;
    wire signed [31:0]        out_sum;
    wire [31:0]               out_factor;

    ibert_softmax #(.IN_BITS(IN_BITS), .MAX_N(MAX_N), .OUT_BIT(OUT_BIT), .X0(X0), .B_INT(B_INT),
                    .C_INT(C_INT), .RQ_M(RQ_M), .RQ_E(RQ_E)) dut (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_last(in_last), .in_x(in_x),
        .out_valid(out_valid), .out_last(out_last), .out_y(out_y), .out_exp16(out_exp16),
        .out_sum(out_sum), .out_factor(out_factor), .busy(busy)
    );

    reg [IN_BITS-1:0] x_mem  [0:DEPTH-1];
    reg [15:0]        y_mem  [0:DEPTH-1];
    reg [15:0]        e_mem  [0:DEPTH-1];
    reg [31:0]        s_mem  [0:DEPTH-1];
    reg [31:0]        f_mem  [0:DEPTH-1];
    reg [8*1024-1:0]  x_file, y_file, e_file, s_file, f_file;
    integer rows, n, row, j, o, wait_clocks;
    reg dump_e, dump_s, dump_f;

    initial begin
        if (!$value$plusargs("X=%s", x_file) || !$value$plusargs("Y=%s", y_file) ||
            !$value$plusargs("ROWS=%d", rows) || !$value$plusargs("N=%d", n)) begin
            $display("tb_ibert_softmax: ERROR: missing plusargs (+X +Y +ROWS +N)");
            $finish;
        end
        dump_e = ($value$plusargs("EXP16=%s", e_file) != 0);
        dump_s = ($value$plusargs("SUM=%s", s_file) != 0);
        dump_f = ($value$plusargs("FACTOR=%s", f_file) != 0);
        if (n < 1 || n > MAX_N || rows * n > DEPTH) begin
            $display("tb_ibert_softmax: ERROR: N=%0d outside 1..MAX_N=%0d or case larger than DEPTH", n, MAX_N);
            $finish;
        end
        $readmemh(x_file, x_mem, 0, rows * n - 1);
        rst = 1'b1; in_valid = 1'b0; in_last = 1'b0; in_x = 0;
        @(posedge clk); #1 rst = 1'b0;
        for (row = 0; row < rows; row = row + 1) begin
            for (j = 0; j < n; j = j + 1) begin
                in_valid = 1'b1; in_last = (j == n - 1); in_x = x_mem[row * n + j];
                @(posedge clk); #1;
            end
            in_valid = 1'b0; in_last = 1'b0;
            wait_clocks = 0;  // edges since the one that took in_last
            while (!out_valid) begin
                @(posedge clk); #1;
                wait_clocks = wait_clocks + 1;
            end
            if (wait_clocks != n + 2) begin
                $display("tb_ibert_softmax: ERROR: first output %0d clocks after in_last, documented %0d",
                         wait_clocks, n + 2);
                $finish;
            end
            for (o = 0; o < n; o = o + 1) begin
                if (!out_valid || out_last != (o == n - 1)) begin
                    $display("tb_ibert_softmax: ERROR: row %0d element %0d: out_valid/out_last out of step", row, o);
                    $finish;
                end
                y_mem[row * n + o] = out_y;
                e_mem[row * n + o] = out_exp16;
                s_mem[row] = out_sum;
                f_mem[row] = out_factor;
                @(posedge clk); #1;
            end
        end
        $writememh(y_file, y_mem, 0, rows * n - 1);
        if (dump_e) $writememh(e_file, e_mem, 0, rows * n - 1);
        if (dump_s) $writememh(s_file, s_mem, 0, rows - 1);
        if (dump_f) $writememh(f_file, f_mem, 0, rows - 1);
        $finish;
    end
endmodule
